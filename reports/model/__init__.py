"""The time model: machine descriptions, fits of achieved rates, predictions with their terms."""
