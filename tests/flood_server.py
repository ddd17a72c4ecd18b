"""A hostile Live API server that floods its client: ``python tests/flood_server.py N`` prints its port.

Why a script: the flood must come from another process (its memory is not the client's, and it sends
on the other core). Used by tests/client/test_hostile_server.py and bench/memory.py. Binds 127.0.0.1 only and
stops when its one client has taken the flood and closed.
"""

import asyncio
import json
import sys

from websockets.asyncio.server import serve

N = int(sys.argv[1])

async def flood(ws):
    await ws.recv()  # setup
    await ws.send('{"setupComplete": {}}')
    word = '{"serverContent": {"outputTranscription": {"text": "word "}}}'
    # One long reply first (N/2 chunks and no turnComplete), then short turns with heard text and handles.
    for _ in range(N // 2):
        await ws.send(word)
    await ws.send('{"serverContent": {"turnComplete": true}}')
    cycle = [word, word, word, '{"serverContent": {"inputTranscription": {"text": "heard "}}}',
             '{"serverContent": {"turnComplete": true}}']
    for i in range(N // 2):
        if i % 20 == 0:
            await ws.send(json.dumps({"sessionResumptionUpdate": {"newHandle": f"handle-{i}", "resumable": True}}))
        else:
            await ws.send(cycle[i % 5])
    await ws.send('{"serverContent": {"outputTranscription": {"text": "END"}, "turnComplete": true}}')
    await ws.wait_closed()
    stop.set_result(None)

async def main():
    global stop
    stop = asyncio.get_running_loop().create_future()
    async with serve(flood, "127.0.0.1", 0, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.wait_for(stop, 600)

asyncio.run(main())
