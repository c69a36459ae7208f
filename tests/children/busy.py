"""Print "spinning", then burn one core forever."""

print("spinning", flush=True)
while True:
    pass
