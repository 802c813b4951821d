-- MLflow's backend store lives beside DeepMed's database on the same server.
CREATE DATABASE mlflow OWNER deepmed;
