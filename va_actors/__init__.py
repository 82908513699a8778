"""va-actors: Vision Agents plugins as a multi-process actor pipeline."""

from pkgutil import extend_path

# Plugin distributions install va_actors/plugins/<name>/ in their own roots;
# extending this package's path lets va_actors.plugins find them all.
__path__ = extend_path(__path__, __name__)
