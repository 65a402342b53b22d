"""farm: a Ray-based shadow-model farm for membership-inference attacks.

Importing ``farm`` pulls in neither torch nor Ray; those load only in the modules that need them.
"""

__version__ = "0.1.0"
