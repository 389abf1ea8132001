"""The database: connections and the embedded server, migrations, rows, the nearest-neighbour SQL,
ANN indexes and their tuning."""
