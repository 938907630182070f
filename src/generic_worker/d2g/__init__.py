"""d2g: docker-worker payloads translated into native ones and run with Docker.

`translate` (pure) turns the payload into a native payload running `docker run`; `scopes` checks
and maps docker-worker scopes; `images` describes the payload's image; `docker` drives the CLI
through the process package; `cache` remembers loaded image artifacts; `prepare` ties them
together for payload validation. The d2g feature (features/d2g.py) loads the image, fills in
run-time placeholders, copies artifacts out and removes the container. See docs/d2g.md.
"""
