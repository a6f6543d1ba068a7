"""CryptoLake streaming components: exchange simulator and trade producer."""
