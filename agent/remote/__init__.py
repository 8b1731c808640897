"""Remote management over MQTT (issue 17): push a config with automatic rollback, read a
device, scan a bus, fetch log lines, change the log level for a while.

* :mod:`.contract`: topics and payloads of the ``cmd``/``reply`` pair, and the age check.
* :mod:`.policy`: which sections a pushed config may change; secrets kept out of replies.
* :mod:`.store`: atomic writes of pushed configs, the previous ones, the trial marker.
* :mod:`.logbuffer`: the recent log lines, and a log level that goes back by itself.
* :mod:`.service`: the agent's side (one MQTT connection, one response per request).
* :mod:`.client`: the operator's side, ``vatio remote push|read|scan|logs|log-level``.
"""
