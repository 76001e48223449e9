"""BayesBiNN and its STE baseline (Meng, Bachmann & Khan, 2020) as the reproduction by Garg and
Singhal runs them, from its JSON run files (``runfiles/``, package data).

``design`` turns a page's parameters into run configs, ``frames`` turns their records into tables
and ``claims`` holds the paper's reported accuracies.
"""
