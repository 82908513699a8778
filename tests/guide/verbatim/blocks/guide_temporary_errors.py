except TimeoutError as e:
    self._emit_error_event(e, context="transcription timeout")
    # Plugin continues operating
