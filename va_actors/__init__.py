"""va-actors: Vision Agents plugins as a multi-process actor pipeline."""
