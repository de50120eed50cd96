"""A method and a 2:4 backend added from outside kernels/, one file each, and the test that runs
them through the matrix, the records and a report."""
