"""The HTTP translation server: FastAPI app, micro-batching queue, settings and a web page.

Start it with `seq2seq serve --model M.pt`; see `serve.app` for the app factory and command,
`serve.batching` for how concurrent requests share one batched translate call, and
`serve.settings` for every option (also read from `SEQ2SEQ_*` environment variables).
"""
