"""Iterative training by layer binarization (Lan, 2021): designs, frames and claims of its
chapters."""
