// The peer of benchmarks.cache: GraphQL Yoga 5 and its response-cache plugin, serving the
// dashboard Rollcall serves (the same 14 fields, each resolved asynchronously), cached per
// Authorization header as Rollcall caches per viewer. Usage: node server.mjs PORT
import { createServer } from "node:http";
import { createSchema, createYoga } from "graphql-yoga";
import { useResponseCache } from "@graphql-yoga/plugin-response-cache";

const typeDefs = /* GraphQL */ `
  enum Trend { IMPROVING STABLE DECLINING }
  enum Standing { MAHROOM WARNING TASDIQ OK }
  type StudentDashboard {
    studentId: ID!
    totalClasses: Int!
    presentDays: Int!
    absentDays: Int!
    sickDays: Int!
    leaveDays: Int!
    attendanceRate: Float!
    classAverage: Float!
    ranking: Int!
    classSize: Int!
    percentile: Float!
    trend: Trend!
    standing: Standing!
    lastUpdated: String!
    statisticsCalculatedAt: String!
  }
  type Query { studentDashboard(studentId: ID): StudentDashboard! }
`;

const dashboard = {
  studentId: "8d3c6f8e-0d55-4a36-9d61-2b0e7a1c5f10",
  totalClasses: 180,
  presentDays: 171,
  absentDays: 5,
  sickDays: 3,
  leaveDays: 1,
  attendanceRate: 95.0,
  classAverage: 93.4,
  ranking: 7,
  classSize: 40,
  percentile: 82.5,
  trend: "STABLE",
  standing: "OK",
  lastUpdated: new Date().toISOString(),
  statisticsCalculatedAt: new Date().toISOString(),
};
const field = (name) => async (parent) => parent[name];

const yoga = createYoga({
  schema: createSchema({
    typeDefs,
    resolvers: {
      Query: { studentDashboard: async () => ({ ...dashboard }) },
      StudentDashboard: Object.fromEntries(Object.keys(dashboard).map((name) => [name, field(name)])),
    },
  }),
  plugins: [useResponseCache({ session: (request) => request.headers.get("authorization") })],
  graphiql: false,
  logging: false,
});

createServer(yoga).listen(Number(process.argv[2]), "127.0.0.1");
