"""Vision Agents plugins as va-actors actors."""
