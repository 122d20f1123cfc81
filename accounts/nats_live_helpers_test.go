package accounts_test

import "github.com/nats-io/nkeys"

func nkeysUser() (nkeys.KeyPair, error) { return nkeys.CreateUser() }
