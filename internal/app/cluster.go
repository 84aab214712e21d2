package app

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/natslog"
)

// clusterConfig is the embedded cluster's part of the event log's
// configuration (the zero Cluster when not clustered): the node's name,
// derived when not set, and the files of its routes' mutual TLS, checked
// here so that a bad one stops start-up before anything is opened.
func clusterConfig(cfg config.Config, logger *slog.Logger) (natslog.Cluster, error) {
	cl := cfg.Log.Cluster
	if cl.Listen == "" {
		return natslog.Cluster{}, nil
	}
	c := natslog.Cluster{Name: cl.Name, NodeName: cl.NodeName, Listen: cl.Listen, Peers: cl.Peers}
	if c.NodeName == "" {
		name, err := nodeName(cl.Listen)
		if err != nil {
			return c, fmt.Errorf("%w: --node-name: none given, and %v", config.ErrInvalid, err)
		}
		c.NodeName = name
	}
	if !cfg.TLS.Enabled() {
		logger.Warn("the embedded cluster's routes are plain text and unauthenticated without --tls-cert: whoever reaches --cluster-listen can join the cluster and read every event; keep it on a private network, or turn TLS on")
		return c, nil
	}
	pem, err := os.ReadFile(cl.CAFile)
	if err != nil {
		return c, fmt.Errorf("%w: --cluster-ca: %v", config.ErrInvalid, err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return c, fmt.Errorf("%w: --cluster-ca: %s holds no PEM certificate", config.ErrInvalid, cl.CAFile)
	}
	c.TLSCert, c.TLSKey, c.TLSCA = cfg.TLS.CertFile, cfg.TLS.KeyFile, cl.CAFile
	return c, nil
}

// nodeName derives a node's name from the address it takes routes on: its
// host (or, when it listens on every interface, the machine's host name)
// and its port, "10.0.0.5-6222". It is the same at every start, as the
// cluster needs.
func nodeName(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("the host name is unknown: %v", err)
		}
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, host)
	return name + "-" + port, nil
}
