from va_actors.core import tts

class MyTTS(tts.TTS):
    async def stream_audio(self, text: str, **kwargs):
        """Convert text to audio. Return bytes, PcmData, or async iterator."""
        async for chunk in self.provider.synthesize(text):
            yield chunk  # bytes or PcmData

    async def stop_audio(self):
        """Stop current synthesis."""
        await self.provider.cancel()

    async def close(self):
        await self.provider.close()
