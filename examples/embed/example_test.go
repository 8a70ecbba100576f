package main

// Example runs the README's embedding program as written.
func Example() {
	main()
	// Output:
	// granted 34612345678 inbound_call
	// 34612345678 callable for 168h0m0s
	// call allowed: true calls left: 100
}
