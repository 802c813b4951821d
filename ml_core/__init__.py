"""DeepMed ML core: a plain Python library for the chest X-ray pipeline.

Kept import-light on purpose: importing ``ml_core`` (or ``ml_core.serve``) must not
pull in torch, so web processes stay lean. Torch-only modules (models, export,
training) are imported explicitly by the code that needs them.
"""

__version__ = "0.1.0"
