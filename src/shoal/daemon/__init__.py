"""`shoal daemon`: a qBittorrent Web API v2 subset, /metrics and a web page over one `Client`.

The modules are imported by what needs them (the CLI, tests); see docs/daemon.md.
"""
