package arweave

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	graphql "github.com/graph-gophers/graphql-go"
	gqlerrors "github.com/graph-gophers/graphql-go/errors"

	"github.com/aonode/aonode/ans104"
)

// gqlSchema is the subset of the ar.io gateway schema AO uses (gateway.md §3.3).
const gqlSchema = `
schema { query: Query }
type Query {
	transaction(id: ID!): Transaction
	transactions(ids: [ID!], owners: [String!], recipients: [String!], tags: [TagFilter!],
		bundledIn: [ID!], block: BlockFilter, first: Int = 10, after: String,
		sort: SortOrder = HEIGHT_DESC, parent: [ID!]): TransactionConnection!
	block(id: String, height: Int): Block
	blocks(ids: [ID!], height: BlockFilter, first: Int = 10, after: String,
		sort: SortOrder = HEIGHT_DESC): BlockConnection!
}
input TagFilter { name: String!, values: [String!]!, op: TagOperator = EQ }
input BlockFilter { min: Int, max: Int }
enum SortOrder { HEIGHT_ASC, HEIGHT_DESC }
enum TagOperator { EQ, NEQ }
type TransactionConnection { pageInfo: PageInfo!, edges: [TransactionEdge!]! }
type TransactionEdge { cursor: String!, node: Transaction! }
type PageInfo { hasNextPage: Boolean! }
type Transaction {
	id: ID!
	anchor: String!
	signature: String!
	recipient: String!
	owner: Owner!
	fee: Amount!
	quantity: Amount!
	data: MetaData!
	tags: [Tag!]!
	block: Block
	parent: Parent @deprecated(reason: "Use bundledIn")
	bundledIn: Bundle
}
type Owner { address: String!, key: String! }
type Amount { winston: String!, ar: String! }
type MetaData { size: String!, type: String }
type Tag { name: String!, value: String! }
type Block { id: ID!, timestamp: Int!, height: Int!, previous: ID! }
type Parent { id: ID! }
type Bundle { id: ID! }
type BlockConnection { pageInfo: PageInfo!, edges: [BlockEdge!]! }
type BlockEdge { cursor: String!, node: Block! }
`

// graphQL executes queries against a store.
type graphQL struct{ schema *graphql.Schema }

func newGraphQL(s *Store) *graphQL {
	return &graphQL{schema: graphql.MustParseSchema(gqlSchema, &gqlRoot{s},
		graphql.UseFieldResolvers(), graphql.MaxDepth(12), graphql.MaxQueryLength(64<<10), graphql.MaxParallelism(4))}
}

// gqlRequest is the JSON body of a GraphQL POST.
type gqlRequest struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
}

// Bounds on one GraphQL request (issue 19: 850 aliases of transactions(first:
// 100) took 31 s and answered 104 MB). Real clients ask for one or two root
// fields of at most 100 items.
const (
	maxQueryItems  = 1000     // page sizes summed over every root field and alias
	maxRootFields  = 100      // root fields, aliases included
	maxAnswerBytes = 16 << 20 // estimated, checked while items are loaded
	queryWait      = 10 * time.Second
)

// maxConcurrentQueries bounds GraphQL executions at once; more wait up to
// queryWait, then get 503.
var maxConcurrentQueries = max(4, 2*runtime.GOMAXPROCS(0))

// costError refuses a request over the bounds; it is the caller's fault.
type costError struct{ msg string }

func (e *costError) Error() string { return e.msg }

// cost accounts for one request. In a dry run resolvers only charge their
// cost and return nothing, so that a query over the bounds is refused before
// any of it runs.
type cost struct {
	dry           bool
	fields, items atomic.Int64
	bytes         atomic.Int64
}

type costKey struct{}

// charge adds a root field asking for items items.
func charge(ctx context.Context, items int) (dry bool, err error) {
	c, _ := ctx.Value(costKey{}).(*cost)
	if c == nil {
		return false, nil
	}
	f, n := c.fields.Add(1), c.items.Add(int64(items))
	if f > maxRootFields {
		return c.dry, &costError{fmt.Sprintf("query too costly: more than %d root fields (aliases count)", maxRootFields)}
	}
	if n > maxQueryItems {
		return c.dry, &costError{fmt.Sprintf("query too costly: more than %d items over all fields (the sum of first)", maxQueryItems)}
	}
	return c.dry, nil
}

// chargeBytes adds the estimated answer size of items.
func chargeBytes(ctx context.Context, items []*Item) error {
	c, _ := ctx.Value(costKey{}).(*cost)
	if c == nil {
		return nil
	}
	var n int64
	for _, it := range items {
		// Every field asked for: ids, base64url owner and signature, tags
		// with JSON escaping of the worst kind (\u00XX).
		n += 512 + 2*int64(len(it.Owner)+len(it.Signature))
		for _, t := range it.Tags {
			n += 32 + 6*int64(len(t.Name)+len(t.Value))
		}
	}
	if c.bytes.Add(n) > maxAnswerBytes {
		return &costError{fmt.Sprintf("answer too large: more than %d MiB; ask for fewer items", maxAnswerBytes>>20)}
	}
	return nil
}

// connCost is the cost of a connection field: its page size.
func connCost(first int32) int {
	if first == 0 {
		return 1
	}
	return pageSize(int(first))
}

// exec runs a request: a dry run that only adds up its cost, then, when that
// is within the bounds, the query itself. A request over the bounds answers
// errors only, which the caller sends as 400.
func (g *graphQL) exec(ctx context.Context, req gqlRequest) (resp *graphql.Response, refused bool) {
	dry := &cost{dry: true}
	resp = g.schema.Exec(context.WithValue(ctx, costKey{}, dry), req.Query, req.OperationName, req.Variables)
	if err := costErr(resp); err != nil {
		return err, true
	}
	if len(resp.Errors) > 0 {
		// Parse, validation, variable or argument errors: the dry run reads
		// no store, so every error it finds is the request's.
		return &graphql.Response{Errors: resp.Errors}, true
	}
	resp = g.schema.Exec(context.WithValue(ctx, costKey{}, &cost{}), req.Query, req.OperationName, req.Variables)
	if err := costErr(resp); err != nil {
		return err, true
	}
	if len(resp.Data) > maxAnswerBytes {
		return &graphql.Response{Errors: []*gqlerrors.QueryError{{Message: fmt.Sprintf("answer too large: more than %d MiB; ask for fewer items", maxAnswerBytes>>20)}}}, true
	}
	for _, e := range resp.Errors {
		var qe *QueryError
		if errors.As(e.ResolverError, &qe) {
			return &graphql.Response{Errors: resp.Errors}, true // an invalid argument
		}
	}
	return resp, false
}

// costErr returns a response holding only the first cost error of resp, or nil.
func costErr(resp *graphql.Response) *graphql.Response {
	for _, e := range resp.Errors {
		var ce *costError
		if errors.As(e.ResolverError, &ce) {
			return &graphql.Response{Errors: []*gqlerrors.QueryError{{Message: ce.msg}}}
		}
	}
	return nil
}

type gqlRoot struct{ s *Store }

type tagFilterArg struct {
	Name   string
	Values []string
	Op     string
}

type blockFilterArg struct{ Min, Max *int32 }

func (r *gqlRoot) Transaction(ctx context.Context, args struct{ ID graphql.ID }) (*gqlTx, error) {
	if dry, err := charge(ctx, 1); dry || err != nil {
		return nil, err
	}
	it, err := r.s.Get(ctx, string(args.ID))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &gqlTx{it}, nil
}

func (r *gqlRoot) Transactions(ctx context.Context, args struct {
	IDs        *[]graphql.ID
	Owners     *[]string
	Recipients *[]string
	Tags       *[]tagFilterArg
	BundledIn  *[]graphql.ID
	Parent     *[]graphql.ID
	Block      *blockFilterArg
	First      int32 // defaults to 10 in the schema
	After      *string
	Sort       string
}) (*gqlTxConn, error) {
	q := Query{Ascending: args.Sort == "HEIGHT_ASC", First: int(args.First)}
	if args.First < 0 {
		return nil, &QueryError{"first must not be negative"}
	}
	if dry, err := charge(ctx, connCost(args.First)); dry || err != nil {
		return &gqlTxConn{}, err
	}
	if args.First == 0 {
		return &gqlTxConn{}, nil
	}
	if args.After != nil {
		q.After = *args.After
	}
	q.IDs = ids(args.IDs)
	q.BundledIn = ids(args.BundledIn)
	if args.Parent != nil {
		q.BundledIn = append(q.BundledIn, ids(args.Parent)...)
	}
	if args.Owners != nil {
		q.Owners = *args.Owners
	}
	if args.Recipients != nil {
		q.Recipients = *args.Recipients
	}
	if args.Tags != nil {
		for _, t := range *args.Tags {
			q.Tags = append(q.Tags, TagFilter{Name: t.Name, Values: t.Values, Not: t.Op == "NEQ"})
		}
	}
	if args.Block != nil {
		q.MinHeight, q.MaxHeight = heights(args.Block)
	}
	items, more, err := r.s.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	if err := chargeBytes(ctx, items); err != nil {
		return nil, err
	}
	c := &gqlTxConn{more: more}
	for _, it := range items {
		c.edges = append(c.edges, &gqlTxEdge{it})
	}
	return c, nil
}

func ids(v *[]graphql.ID) []string {
	if v == nil {
		return nil
	}
	out := make([]string, len(*v))
	for i, id := range *v {
		out[i] = string(id)
	}
	return out
}

func heights(f *blockFilterArg) (lo, hi *int64) {
	if f.Min != nil {
		v := int64(*f.Min)
		lo = &v
	}
	if f.Max != nil {
		v := int64(*f.Max)
		hi = &v
	}
	return lo, hi
}

func (r *gqlRoot) Block(ctx context.Context, args struct {
	ID     *string
	Height *int32
}) (*gqlBlock, error) {
	if dry, err := charge(ctx, 1); dry || err != nil {
		return nil, err
	}
	var q BlockQuery
	q.First = 1
	if args.ID != nil {
		q.IDs = []string{*args.ID}
	}
	if args.Height != nil {
		h := int64(*args.Height)
		q.MinHeight, q.MaxHeight = &h, &h
	}
	bs, _, err := r.s.Blocks(ctx, q)
	if err != nil || len(bs) == 0 {
		return nil, err
	}
	return &gqlBlock{bs[0]}, nil
}

func (r *gqlRoot) Blocks(ctx context.Context, args struct {
	IDs    *[]graphql.ID
	Height *blockFilterArg
	First  int32
	After  *string
	Sort   string
}) (*gqlBlockConn, error) {
	q := BlockQuery{IDs: ids(args.IDs), Ascending: args.Sort == "HEIGHT_ASC", First: int(args.First)}
	if args.First < 0 {
		return nil, &QueryError{"first must not be negative"}
	}
	if dry, err := charge(ctx, connCost(args.First)); dry || err != nil {
		return &gqlBlockConn{}, err
	}
	if args.First == 0 {
		return &gqlBlockConn{}, nil
	}
	if args.After != nil {
		q.After = *args.After
	}
	if args.Height != nil {
		q.MinHeight, q.MaxHeight = heights(args.Height)
	}
	bs, more, err := r.s.Blocks(ctx, q)
	if err != nil {
		return nil, err
	}
	c := &gqlBlockConn{more: more}
	for _, b := range bs {
		c.edges = append(c.edges, &gqlBlockEdge{b})
	}
	return c, nil
}

type pageInfo struct{ more bool }

func (p pageInfo) HasNextPage() bool { return p.more }

type gqlTxConn struct {
	more  bool
	edges []*gqlTxEdge
}

func (c *gqlTxConn) PageInfo() pageInfo  { return pageInfo{c.more} }
func (c *gqlTxConn) Edges() []*gqlTxEdge { return c.edges }
func (e *gqlTxEdge) Cursor() string      { return Cursor(e.it.Seq) }
func (e *gqlTxEdge) Node() *gqlTx        { return &gqlTx{e.it} }

type gqlTxEdge struct{ it *Item }

type gqlBlockConn struct {
	more  bool
	edges []*gqlBlockEdge
}

func (c *gqlBlockConn) PageInfo() pageInfo     { return pageInfo{c.more} }
func (c *gqlBlockConn) Edges() []*gqlBlockEdge { return c.edges }

type gqlBlockEdge struct{ b Block }

func (e *gqlBlockEdge) Cursor() string  { return Cursor(e.b.Height) }
func (e *gqlBlockEdge) Node() *gqlBlock { return &gqlBlock{e.b} }

type gqlBlock struct{ b Block }

func (b *gqlBlock) ID() graphql.ID       { return graphql.ID(b.b.ID) }
func (b *gqlBlock) Timestamp() int32     { return int32(b.b.Timestamp) }
func (b *gqlBlock) Height() int32        { return int32(b.b.Height) }
func (b *gqlBlock) Previous() graphql.ID { return graphql.ID(b.b.Previous) }

type gqlTx struct{ it *Item }

type gqlOwner struct{ Address, Key string }
type gqlAmount struct{ Winston, Ar string }
type gqlMeta struct {
	Size string
	Type *string
}
type gqlRef struct{ ID graphql.ID }

var zeroAmount = gqlAmount{Winston: "0", Ar: "0.000000000000"}

func (t *gqlTx) ID() graphql.ID      { return graphql.ID(t.it.ID) }
func (t *gqlTx) Anchor() string      { return ans104.Base64URL(t.it.Anchor) }
func (t *gqlTx) Signature() string   { return ans104.Base64URL(t.it.Signature) }
func (t *gqlTx) Recipient() string   { return t.it.Target }
func (t *gqlTx) Owner() gqlOwner     { return gqlOwner{t.it.OwnerAddress, ans104.Base64URL(t.it.Owner)} }
func (t *gqlTx) Fee() gqlAmount      { return zeroAmount }
func (t *gqlTx) Quantity() gqlAmount { return zeroAmount }
func (t *gqlTx) Tags() []ans104.Tag  { return t.it.Tags }
func (t *gqlTx) Data() gqlMeta {
	m := gqlMeta{Size: strconv.FormatInt(t.it.DataSize, 10)}
	if t.it.ContentType != "" {
		ct := t.it.ContentType
		m.Type = &ct
	}
	return m
}
func (t *gqlTx) Block() *gqlBlock {
	if t.it.Block == nil {
		return nil
	}
	return &gqlBlock{*t.it.Block}
}
func (t *gqlTx) Parent() *gqlRef { return t.BundledIn() }
func (t *gqlTx) BundledIn() *gqlRef {
	if t.it.BundledIn == "" {
		return nil
	}
	return &gqlRef{graphql.ID(t.it.BundledIn)}
}

// decodeGraphQLRequest reads a POST body, or GET parameters.
func decodeGraphQLRequest(body []byte) (gqlRequest, error) {
	var req gqlRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return req, err
	}
	return req, nil
}
