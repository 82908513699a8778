self.connection = await asyncio.wait_for(
    self.provider.connect(),
    timeout=10.0
)
