"""Fetch only a magnet link's metadata (BEP 9) and save it as a .torrent file.

    python fetch_metadata.py MAGNET HOST:PORT OUT.torrent

`Client.fetch_metadata` finds peers through the DHT node at HOST:PORT, downloads the
info dictionary over ut_metadata, checks its SHA-1 against the magnet's info-hash and
writes nothing else to disk.
"""

import sys

import trio

import shoal
from shoal.metainfo import build_metainfo


async def main() -> None:
    magnet, bootstrap, out = sys.argv[1:4]
    host, port = bootstrap.rsplit(":", 1)
    config = shoal.ClientConfig(bind_host="127.0.0.1", port=0, bootstrap=((host, int(port)),))
    async with shoal.open_client(config) as client:
        with trio.fail_after(60):
            meta = await client.fetch_metadata(magnet)
    info = meta.info
    await trio.Path(out).write_bytes(build_metainfo(info.raw))
    print(f"{info.name}: {info.total_length} bytes in {info.num_pieces} pieces -> {out}")


trio.run(main)
