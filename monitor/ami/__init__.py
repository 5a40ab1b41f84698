"""AMI adapters: the wire codec, file sources (.ami/.jsonl captures), the live panoramisk source, the recorder."""
