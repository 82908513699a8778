"""``python -m va_actors.runtime.host SPEC.json``."""

from va_actors.runtime.host.process import main

main()
