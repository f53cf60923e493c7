"""``make bench``: Liaison's hub measured against RabbitMQ's shovel and two Python peers."""
