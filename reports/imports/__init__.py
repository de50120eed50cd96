"""Other studies' records read as a peer's data, each row labelled as imported."""
