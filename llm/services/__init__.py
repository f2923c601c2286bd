"""The LLM app's writes: agents (``agents``), and answers streamed into rooms
(``streams`` for the actions a client asks for, ``room_stream`` for the running task,
``stream_records`` for what is stored when an answer starts and ends, ``stream_sweeper``
for ending the answers whose worker died)."""
