"""What stages hand each other: the answer format, the conversation, segment records and their reader, the dataset
reader, the run config a training run writes."""
