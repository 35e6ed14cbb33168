"""Apps served by real servers (gunicorn, uvicorn, gevent) in the reliability tests."""
