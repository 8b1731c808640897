"""The ingest bridge: Vatio's MQTT messages into InfluxDB (or VictoriaMetrics), in batches,
acknowledged to the broker only after their batch was written."""
