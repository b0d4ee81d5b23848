"""The machine-learning half of esteira: data, validation, the classifier, its profile and serving."""
