"""The database: connections and the embedded server, migrations, rows, ANN indexes."""
