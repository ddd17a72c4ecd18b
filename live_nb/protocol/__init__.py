"""The sans-I/O protocol layer: wire messages, config, session state and the context ledger.

Nothing here imports asyncio, websockets, IPython or ipywidgets (tests/protocol/test_protocol_imports.py
checks it): this layer only turns frames into typed messages and back, and keeps state.
"""
