"""eliquare: distil a small monolingual model out of a large multilingual transformer.

Singh, De Clercq, Lefever, "Distilling Monolingual Models from Large Multilingual
Transformers", Electronics 2023.
"""

__version__ = "0.1.0"

from eliquare.errors import EliquareError  # noqa: E402

__all__ = ["EliquareError", "__version__"]
