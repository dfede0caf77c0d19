package threenode

import (
	"crypto/x509"
	"encoding/pem"
	"errors"

	"github.com/ferryvpn/ferry/cmd/internal/client"
)

func parsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return certs, nil
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
}

func asAPIError(err error, target **client.Error) bool { return errors.As(err, target) }
