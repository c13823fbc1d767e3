"""Apache Airflow provider for Eshopbox."""

__version__ = "0.1.0"
