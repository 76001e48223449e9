"""Bop (Helwegen et al., 2019) as its reproducibility study (Nayak, Raj and Kalyani) ran it: the
tau/gamma ablations with BatchNorm and LayerNorm, and the denoising auto-encoders.

``design`` turns a page's parameters into runs, ``frames`` turns their records into tables and
``claims`` grades the study's claims on them.
"""
