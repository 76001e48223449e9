"""The bop2 paper's chapter code."""
