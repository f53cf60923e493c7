"""Extra RabbitMQ nodes on one machine, for tests and for trying a cluster by hand."""
