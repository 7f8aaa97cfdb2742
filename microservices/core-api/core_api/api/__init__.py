"""core-api's HTTP layer: the routes (`routes/`), what they depend on (`deps`), their request
and response models (`schemas`)."""
