package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// RedisConfig configures the Redis client shared by the Redis bus and store.
type RedisConfig struct {
	// URL is redis://[user:password@]host:port/db (go-redis ParseURL syntax).
	URL string
	// Timeout bounds every command (default 2 s). go-redis only honours context deadlines with
	// ContextTimeoutEnabled, which NewRedisClient sets.
	Timeout time.Duration
}

// zapRedisLogger routes go-redis's own messages (pool dial failures, reconnects) to zap.
type zapRedisLogger struct{ log *zap.Logger }

func (l zapRedisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}

// SetRedisLogger sends go-redis's process-wide log output to log (it prints to stderr
// otherwise). Call it once at start.
func SetRedisLogger(log *zap.Logger) { redis.SetLogger(zapRedisLogger{log.Named("redis")}) }

// redisBufferSize is the read and the write buffer of each Redis connection.
const redisBufferSize = 8 << 10

// NewRedisClient opens a client for url. It does not dial until first use.
func NewRedisClient(cfg RedisConfig) (*redis.Client, error) {
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url %q: %w (want redis://host:port/db)", cfg.URL, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	opt.ContextTimeoutEnabled = true
	opt.ReadTimeout, opt.WriteTimeout = cfg.Timeout, cfg.Timeout
	opt.DialTimeout = cfg.Timeout
	opt.MaxRetries = 1
	// go-redis's buffers are 32 KiB a connection (128 KiB to read in its pipeline pool) by
	// default: 4.0 MB once a hello storm has opened both pools (0.56 MB with these; heap
	// profiles recording every allocation), a fixed cost that showed as 0.2 KiB per connection
	// at 18,000. What presenced sends and reads is small: a state record of a few hundred
	// bytes, a follow list of about 60 bytes a follow, which a small buffer reads in more calls
	// but just as right.
	opt.ReadBufferSize, opt.WriteBufferSize = redisBufferSize, redisBufferSize
	opt.PipelineReadBufferSize, opt.PipelineWriteBufferSize = redisBufferSize, redisBufferSize
	return redis.NewClient(opt), nil
}
