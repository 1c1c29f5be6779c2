"""Pure decisions: no I/O, no asyncio, no threading, no redis."""
