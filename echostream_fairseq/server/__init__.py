"""The live server: ``echostream-serve``, its WebSocket protocol and its page."""
