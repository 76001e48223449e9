"""Training recipes that are more than an optimizer (continual learning), built on the Trainer."""
