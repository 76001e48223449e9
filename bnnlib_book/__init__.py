"""The book's code: per paper a design (parameters -> labelled run configs) and its claims, the
grading rules, charts and widgets, the papermill runner and the Jupyter Book build.

It imports :mod:`bnnlib` and is never imported by it.
"""
