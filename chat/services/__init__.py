"""Every write on chat data, one function each, shared by the REST views and the consumer.

A service validates, checks permission, writes in a transaction and leaves its broadcast to
run on commit (``chat.events``). Doors only parse input and shape output.
"""
