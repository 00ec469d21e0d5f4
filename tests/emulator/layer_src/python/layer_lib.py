VALUE = "hello from layer"
