"""Namespace for plugin distributions: ``from va_actors.plugins import <name>``.

Each plugin distribution (plugins/<name>/ in this repository, or a third-party
package) ships ``va_actors/plugins/<name>/``; extend_path lets them all live
under this one package.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
