"""The viewer: server-rendered HTML pages over the API's data (home, layer, neuron and job pages)."""
