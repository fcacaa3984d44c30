"""The built-in index kinds, one module per kind or family; importing this package registers them."""

from . import ann, flat, ivfpq, scalar  # noqa: F401  (each registers its kinds)
