"""Bop2ndOrder (Suarez-Ramirez et al., 2021): biased and unbiased variants with BatchNorm and
LayerNorm, the tau/gamma/sigma ablations and schedulers, and the CIFAR-10 recipe.

``design`` turns a page's parameters into labelled runs, ``frames`` turns their records into
tables and ``claims`` grades the paper's claims on them.
"""
