"""Download a magnet: ``python embed_download.py MAGNET DHT_HOST DHT_PORT DIR``."""

import sys
from pathlib import Path

import trio

import shoal


async def main() -> None:
    magnet, host, port, out = sys.argv[1:5]
    config = shoal.ClientConfig(bind_host="127.0.0.1", port=0, bootstrap=((host, int(port)),))
    async with shoal.open_client(config) as client:
        torrent = await client.add(magnet, save_to=Path(out), seed=False)
        with trio.fail_after(60):  # deadlines are cancel scopes, never timeout= arguments
            await torrent.wait_complete()
        print(f"{torrent.name}: {torrent.statistics().downloaded} bytes verified")


trio.run(main)
